"""Placeholder: filled in by issue 20."""
