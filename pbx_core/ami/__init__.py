"""The AMI shell: framing (sans-IO), EventList assembly, and the connection to Asterisk."""
