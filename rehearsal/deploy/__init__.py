"""The local deployer: provision, publish versions, PreTraffic hook, shift, watch alarms, roll back."""
