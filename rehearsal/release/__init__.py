"""The release: runner, pipeline model from cdk.out, action executors, buildspecs, source, approval, record.

Deployments are reached only through the port in `deploy_port.py`; the command line injects the deployer.
"""
