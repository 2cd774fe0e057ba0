from sqlalchemy.orm import Session


def load_seed_if_empty(session: Session) -> None:
    """Placeholder until the directory package lands."""
