"""supervisord for the scheduler: the programs and their groups (``programs``, ``workers``), the config rendered
from the template (``render``) and written or checked (``files``), the running supervisord steered over its XML-RPC
socket (``control``), the SaaS side's config (``saas``), which variables reach the programs (``env_secrets``) and
the options the render commands share (``arguments``)."""
