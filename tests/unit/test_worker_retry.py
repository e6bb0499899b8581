import unittest

from sqlalchemy.exc import DBAPIError, IntegrityError

from lightning_worker.retry import is_transient
from shared.errors import LightningRequestError, LightningUnavailable


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def db_error(sqlstate: str, cls: type[DBAPIError] = DBAPIError) -> DBAPIError:
    return cls("UPDATE accounts ...", {}, _DriverError(sqlstate))


class IsTransientTest(unittest.TestCase):
    def test_rolled_back_transactions_are_retried(self):
        self.assertTrue(is_transient(db_error("40P01")))  # deadlock detected
        self.assertTrue(is_transient(db_error("40001")))  # serialization failure

    def test_constraint_violations_are_not_retried(self):
        self.assertFalse(is_transient(db_error("23514", IntegrityError)))  # a CHECK refused the write
        self.assertFalse(is_transient(db_error("23505", IntegrityError)))

    def test_lightning_errors(self):
        self.assertTrue(is_transient(LightningUnavailable("connection refused")))
        self.assertFalse(is_transient(LightningRequestError("invoice expired")))
