"""Workers: inventory, payment and shipping, each a durable consumer of ``cmd.<worker>.>``."""
