"""Functions used by branching.yaml."""

CUSTOMERS = {"c-1": {"name": "Ada", "plan": "pro"}}


def lookup_customer(customer_id: str) -> dict[str, str]:
    # Unknown ids raise: the workflow's `lookup.error` edge turns that into a guest profile.
    return CUSTOMERS[customer_id]


def guest_profile(reason: str) -> dict[str, str]:
    return {"name": "guest", "plan": "free", "why": reason}


def assign(team: str, text: str) -> dict[str, str]:
    return {"team": team, "summary": text[:40]}


def page(text: str) -> str:
    return f"paged on-call about: {text[:40]}"
