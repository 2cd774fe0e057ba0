"""Every table of the product, imported in one place so Alembic and tests see the whole schema."""

from cyberpact.accounts import models as _accounts
from cyberpact.audit import models as _audit
from cyberpact.cases import models as _cases
from cyberpact.directory import models as _directory
from cyberpact.evidence import models as _evidence  # noqa: F401 - registers the evidence tables
from cyberpact.federation import models as _federation
from cyberpact.intel import models as _intel  # noqa: F401 - registers the intel tables
from cyberpact.kit import jobs as _jobs
from cyberpact.kit import keystore as _keystore
from cyberpact.kit.db import Base

metadata = Base.metadata

__all__ = ["_accounts", "_audit", "_cases", "_directory", "_federation", "_jobs", "_keystore", "metadata"]
