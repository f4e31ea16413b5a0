"""Channel, plan and status codes of the sample tickets (their order fixes the random draws)."""

from __future__ import annotations

CHANNELS = ("technical_support", "account_billing", "abuse", "sales", "privacy", "security")
CHANNEL_P = (0.45, 0.30, 0.08, 0.07, 0.05, 0.05)
PLANS = ("free", "plan_1", "plan_2", "plan_3")
PLAN_P = (0.50, 0.25, 0.15, 0.10)
PRIORITY_PLANS = (2, 3)  # plan_2, plan_3
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
ST_NEW, ST_OPEN, ST_PENDING, ST_HOLD, ST_SOLVED, ST_CLOSED, ST_NONE = range(7)

CHANNEL_ALIASES = {
    "account_billing": ["account", "billing", "account & billing"],
    "technical_support": ["tech", "technical support", "support"],
    "sales": ["sales@telegramos.com", "sales inquiries"],
    "abuse": ["abuse@telegramos.com", "abuse reports"],
    "privacy": ["privacy requests", "/legal/privacy"],
    "security": ["security@telegramos.com", "security disclosures"],
}
UNKNOWN_CHANNELS = ("carrier_pigeon", "fax", "phone_hotline", "twitter_dm", "unknown")
