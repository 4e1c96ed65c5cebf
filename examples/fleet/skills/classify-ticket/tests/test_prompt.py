"""The prompt as the gateway receives it: rendered from skill.yaml's template, with the model group."""

from pathlib import Path

from fleetplane.skills.prompt import build_request
from fleetplane.skills.verify import load_folder

FOLDER = Path(__file__).parent.parent


def test_the_prompt_names_the_customer_and_the_hints() -> None:
    skill = load_folder(FOLDER)
    body = build_request(
        skill.contract, skill.entrypoint, {"text": "Charged twice", "customer": "Ann", "hints": ["card"]}
    )
    assert body["model"] == "chat-small"
    assert body["messages"][1]["content"] == "Ticket from Ann:\nCharged twice\nHints: card\nLabel:\n"
    assert "response_format" not in body  # a text answer


def test_without_hints_there_is_no_hints_line() -> None:
    skill = load_folder(FOLDER)
    body = build_request(skill.contract, skill.entrypoint, {"text": "Where is it?"})
    assert body["messages"][1]["content"] == "Ticket from a customer:\nWhere is it?\nLabel:\n"
