"""Every table of the product, imported in one place so Alembic and tests see the whole schema."""

from cyberpact.accounts import models as _accounts
from cyberpact.audit import models as _audit
from cyberpact.kit import keystore as _keystore
from cyberpact.kit.db import Base

metadata = Base.metadata

__all__ = ["_accounts", "_audit", "_keystore", "metadata"]
