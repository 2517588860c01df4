"""Test support code: the real control plane and helpers to drive it. Free of pytest."""
