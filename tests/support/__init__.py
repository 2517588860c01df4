"""Test support code: the real control plane and helpers to drive it, and tiny synthetic data.
Free of pytest."""
