"""The local cloud: moto servers on loopback, SAM/CloudFormation templates, resource provisioning."""
