"""Configs: composing them (:mod:`.compose`), their schemas and checks, the resolvers they call, run folders.
Imports nothing of rsseg but :mod:`rsseg.errors`; everything else may import it.
"""

from rsseg.config.compose import CONF_DIR, PRIMARY_CONFIGS, compose_config, config_folders, config_groups
from rsseg.config.resolvers import search_path, user_config_dirs

__all__ = ["CONF_DIR", "PRIMARY_CONFIGS", "compose_config", "config_folders", "config_groups", "search_path",
           "user_config_dirs"]
