"""Test support code: the real control plane and helpers to drive it, tiny synthetic data, and
bench/ scripts loaded as modules. Free of pytest."""
