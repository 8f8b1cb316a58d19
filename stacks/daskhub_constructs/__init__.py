"""The named constructs the Daskhub stack is composed of (stacks/daskhub.py)."""
