"""Leaf facts every part may use: errors for people, the `.rehearsal/` layout, fake account, clock."""
