"""Custom search attributes that let operators filter responses in the Temporal UI."""

from temporalio.common import SearchAttributeKey

AGENT_OWNER = SearchAttributeKey.for_keyword("AgentOwner")
AGENT_MODEL = SearchAttributeKey.for_keyword("AgentModel")
AGENT_SERVICE_TIER = SearchAttributeKey.for_keyword("AgentServiceTier")
AGENT_STATUS = SearchAttributeKey.for_keyword("AgentStatus")

ALL = (AGENT_OWNER, AGENT_MODEL, AGENT_SERVICE_TIER, AGENT_STATUS)
