"""Test suites shipped with reoptd that every implementation of a contract passes.

``reoptd.testing.store_contract`` holds ``StoreContract``, the suite of every ``Store``. It needs
pytest (a development dependency), so it is imported by name, never from here.
"""

__all__: list[str] = []
