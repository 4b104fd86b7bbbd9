"""Each extension registry names exactly the allowed values of the contract, and each registration refuses a name
the contract lacks (an added criterion, mixing rule or engine needs its name in schemas/values.py)."""

import pytest

from tokenshift.builders.cross_sampling import config, protocols
from tokenshift.builders.decoding import criteria, mixing
from tokenshift.builders.engines import generate
from tokenshift.schemas import values


def test_criteria_registry_is_the_contracts_criteria():
    assert set(criteria.SCORES) == set(values.CRITERIA) - {criteria.RANDOM}
    assert set(config.THRESHOLD_CRITERIA) | set(protocols.UNTHRESHOLDED) | {"random"} == set(values.CRITERIA)
    assert not set(config.THRESHOLD_CRITERIA) & set(protocols.UNTHRESHOLDED)
    assert set(config.THRESHOLD_UNITS) == set(config.THRESHOLD_CRITERIA)  # every threshold criterion says its unit


def test_mixing_rules_and_engines_are_the_contracts_values():
    assert set(mixing.RULES) == set(values.MIX_SPACES)
    assert set(generate.ENGINES) == set(values.GENERATION_ENGINES)
    assert set(values.ENGINES) == set(values.GENERATION_ENGINES) | {values.IMPORT_ENGINE}


@pytest.mark.parametrize("register", [criteria.criterion, mixing.mixing, generate.engine])
def test_a_name_missing_from_the_contract_is_refused(register):
    with pytest.raises(ValueError, match="schemas/values.py"):
        register("not-in-the-contract")
