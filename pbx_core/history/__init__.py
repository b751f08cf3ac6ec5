"""Call history: the bus's deltas folded into SQL rows (``core``: pure; ``writer``: the Redis
consumer group and SQL shell; ``store``: the SQL side; ``cli``: ``pbx-core history``)."""
