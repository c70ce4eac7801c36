# The application's start: load and check the site configuration kept on flash.
# The leader and follower shells (asyncio, UDP, pilot) start from here as they are built.
import json

from ampshare.site import SiteHolder
from ampshare.units import ConfigError

SITE_FILE = "site.json"


def load_site(path=SITE_FILE):
    """The configuration in force, or a ConfigError naming what is wrong with the file."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError:
        raise ConfigError(path, "cannot be read")
    except ValueError:
        raise ConfigError(path, "is not valid JSON")
    return SiteHolder(cfg)


def main(path=SITE_FILE):
    holder = load_site(path)
    site = holder.site
    print("ampshare: %d groups, %d chargers" % (len(site.group_ids), len(site.charger_ids)))
    for w in site.warnings:
        print("warning: " + w)
    return holder
