"""One module per agent role: output schema, prompt assembly and node function."""
