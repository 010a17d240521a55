"""Functions used by loops.yaml."""


def line_total(sku: str, qty: int, price: float) -> dict[str, object]:
    return {"sku": sku, "total": round(qty * price, 2)}


def restock(sku: str, on_hand: int, target: int) -> dict[str, object]:
    return {"sku": sku, "order": max(0, target - on_hand)}


def attempt(number: int) -> str:
    return f"attempt {number}"


def pack(order: str, box: int) -> str:
    return f"{order}: box {box}"


def poll(job: str, attempt: int) -> dict[str, object]:
    # Pretend the job is ready on the third look.
    return {"job": job, "attempt": attempt, "ready": attempt >= 3}


def take(queue: list[str], taken: int) -> dict[str, object]:
    return {"item": queue[taken], "left": len(queue) - taken - 1}
