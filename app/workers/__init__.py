"""Workers: inventory, payment and shipping, each a durable consumer of ``cmd.<worker>.>``; ``commands``
is their wire contract with the saga. The shipping worker also acts on ``OrderPaid`` itself
(``paid_orders``: choreography, no ``ship`` command needed)."""
