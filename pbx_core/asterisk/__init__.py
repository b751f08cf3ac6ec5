"""Asterisk configuration of tenants: render the provisioning model to config files (``render``)
and, elsewhere, write them and reload Asterisk over AMI (``apply``)."""
