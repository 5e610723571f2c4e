"""Payments: one aggregate per order (``events.payment.<order_id>``): charge, decline, refund, void."""

from app.domain.payment.decider import (
    PAYMENT,
    Charged,
    ChargePayment,
    Declined,
    NoPayment,
    PaymentCharged,
    PaymentCommand,
    PaymentDeclined,
    PaymentEvent,
    PaymentRefunded,
    PaymentState,
    PaymentVoided,
    Refunded,
    RefundPayment,
    Voided,
    payment_id_for,
)

__all__ = [
    "PAYMENT",
    "ChargePayment",
    "Charged",
    "Declined",
    "NoPayment",
    "PaymentCharged",
    "PaymentCommand",
    "PaymentDeclined",
    "PaymentEvent",
    "PaymentRefunded",
    "PaymentState",
    "PaymentVoided",
    "RefundPayment",
    "Refunded",
    "Voided",
    "payment_id_for",
]
