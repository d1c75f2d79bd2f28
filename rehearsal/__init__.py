"""The offline pipeline: local cloud, local Lambda runtime, local deployer and the release runner."""
