"""``python -m persist.host.system_api``: print the README's table of every ``ic0`` function."""

from persist.host.system_api import AREA_OF, SPEC
from persist.host.system_api.spec import markdown_table

print(markdown_table(SPEC, AREA_OF))
