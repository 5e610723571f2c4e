"""For ``kopf run -m eda_operator.default``: registers the handlers on kopf's default registry on import
(the one place where importing has an effect; ``eda operator`` uses a private registry instead)."""

import kopf

from eda_operator.handlers import register

register(kopf.get_default_registry())
