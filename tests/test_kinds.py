"""Campaign kinds as plug-ins (`cluster_work.kinds`): the core asks the registry, a kind's module is
imported only where a config has its key, and a campaign block is parsed once, by validation."""
import subprocess
import sys

import pytest
from conftest import ROOT

from cluster_work.campaign_plans import split_campaigns
from cluster_work.config import KNOWN_KEYS, merge_and_validate, parse_documents
from cluster_work.ensemble.spec import EnsembleSpec
from cluster_work.errors import ConfigError
from cluster_work.expansion import expand_all
from cluster_work.kinds import CAMPAIGN_KEYS, CampaignKind, campaign_key, kind
from cluster_work.steering.spec import SteerSpec

BASE = "name: DEFAULT\nrepetitions: 1\niterations: 3\npath: out\n---\nname: a\ngrid: {c: [1, 2]}\n"
BLOCKS = {"steer": "steer: {policy: successive_halving, metric: loss}\n",
          "ensemble": "ensemble: {walkers: 2, coordinate: x, bins: [0.5, 1.5], walkers_per_bin: 2}\n"}
SPECS = {"steer": SteerSpec, "ensemble": EnsembleSpec}


def documents(text):
    return merge_and_validate(parse_documents(text, "c.yml"), "c.yml", lambda message: None)


@pytest.mark.parametrize("key", CAMPAIGN_KEYS, ids=CAMPAIGN_KEYS)
def test_each_registered_kind_implements_the_interface_under_its_key(key):
    registered = kind(key)
    assert isinstance(registered, CampaignKind)
    assert (registered.key, key in KNOWN_KEYS, campaign_key({key: {}})) == (key, True, key)
    assert registered.label and registered.progress_json_key


@pytest.mark.parametrize("key", CAMPAIGN_KEYS, ids=CAMPAIGN_KEYS)
def test_a_campaign_block_is_parsed_once_and_handed_on_to_the_campaign(key):
    loaded = documents(BASE + BLOCKS[key])
    assert isinstance(loaded.specs["a"], SPECS[key])
    [document] = expand_all(loaded, None, "c.yml", lambda message: None).documents
    assert document.campaign_spec is loaded.specs["a"]
    _, [campaign] = split_campaigns([(document, 0)])
    assert (campaign.kind, campaign.spec) == (key, loaded.specs["a"])


def test_a_plain_document_has_no_spec():
    loaded = documents(BASE)
    assert loaded.specs == {}
    assert expand_all(loaded, None, "c.yml", lambda message: None).documents[0].campaign_spec is None


def test_two_campaign_blocks_in_one_document_are_one_line():
    with pytest.raises(ConfigError, match=r"c.yml: experiment 'a': 'steer': give 'ensemble' or 'steer', not both"):
        documents(BASE + BLOCKS["steer"] + BLOCKS["ensemble"])


@pytest.mark.processes
def test_a_plain_config_imports_no_kind_module():
    """The registry imports a kind where a config has its key: a plain sweep pays for none (numpy, optuna)."""
    code = ("import sys\nfrom cluster_work.config import merge_and_validate, parse_documents\n"
            f"merge_and_validate(parse_documents({BASE!r}, 'c.yml'), 'c.yml')\n"
            "print(sorted(m for m in sys.modules if m.startswith(('cluster_work.steering', 'cluster_work.ensemble'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
