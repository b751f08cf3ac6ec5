"""pbx-core: a cloud PBX and IP call-centre core that drives, watches and shows Asterisk."""

__version__ = "0.1.0"
