"""The callbacks' functional core: pure functions and values, no I/O, no clock, type-checked
strictly. Its shell (SQL, AMI, the engine part) is the rest of ``pbx_core.callbacks``."""
