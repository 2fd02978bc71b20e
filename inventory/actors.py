"""Who made a change, as recorded in the ledger's `created_by`.

`user:<username>` for staff, `client:<name>` for API clients and
`system:<job>` for background jobs and commands.
"""

SYSTEM_REORDER = "system:reorder"
SYSTEM_SWEEPER = "system:reservation-sweeper"
SYSTEM_COMMAND = "system:command"


def actor_for_user(user) -> str:
    return f"user:{user.get_username()}"


def actor_for_client(name: str) -> str:
    return f"client:{name}"
