"""Workers: inventory, payment and shipping, each a durable consumer of ``cmd.<worker>.>``; ``commands``
is their wire contract with the saga."""
