"""The CDK app for the self-deploying release pipeline (see docs/architecture.md)."""
