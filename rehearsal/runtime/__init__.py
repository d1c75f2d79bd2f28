"""The local Lambda runtime: worker processes, versions and aliases, gateway, event sources."""
