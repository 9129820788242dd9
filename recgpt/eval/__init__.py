"""Measurements that write reports under `reports/`."""
