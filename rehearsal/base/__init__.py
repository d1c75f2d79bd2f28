"""Leaf facts every part may use: errors for people, the `.rehearsal/` layout, accounts and regions, clock."""
