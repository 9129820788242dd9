"""TRL training package (SFT, listwise reward model, GRPO with constrained rewards): a later milestone."""
