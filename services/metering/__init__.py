"""Metering: usage events counted exactly once, and the meters that aggregate them."""
