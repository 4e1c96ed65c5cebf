"""The declarative agent runner (`fleetplane agent serve`): an agent that is only a model group,
versioned instructions and limits, served with the same invoke API and health endpoint as any agent,
inside the same sandbox. Its model calls go to the gateway through the sandbox's bridge (the base URL and
placeholder key the sandbox injects), so the agent's own key, quota and breakers apply.
"""
