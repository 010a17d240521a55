"""Functions used by invoice.yaml (the child workflow)."""


def subtotal(lines: list[dict[str, float]]) -> float:
    return round(sum(line["qty"] * line["price"] for line in lines), 2)


def tax(amount: float, rate: float) -> float:
    return round(amount * rate, 2)
