"""Helpers shared by the tests: sample data generators and service fixtures."""
