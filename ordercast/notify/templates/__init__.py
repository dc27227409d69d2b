"""Every message text, one module per audience: `customer` (status messages and order summaries),
`admin` (in-app notifications and Web Push), and what they share in `texts` (gettext, Babel's money
and dates, the `Shop` record).

Import from the modules; the names other layers import from the package are kept here.
"""

from ordercast.notify.templates.admin import AdminNotice, admin_notice
from ordercast.notify.templates.texts import Shop, Texts

__all__ = ["AdminNotice", "Shop", "Texts", "admin_notice"]
