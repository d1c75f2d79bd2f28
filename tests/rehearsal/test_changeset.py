"""Change sets, property validation and capabilities on small templates (no cloud)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.errors import UserError
from rehearsal.cloud.changeset import (
    ADD,
    MODIFY,
    REMOVE,
    ChangeSet,
    check_capabilities,
    create_change_set,
    required_capabilities,
)
from rehearsal.cloud.schemas import invalid_properties, resource_schema
from rehearsal.cloud.template import StackIdentity, TransformedTemplate, transform_template

IDENTITY = StackIdentity(stack_name="s", region="us-east-1", account_id="123456789012")
BASE: dict[str, Any] = {
    "Parameters": {"Retention": {"Type": "Number", "Default": "60"}},
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}},
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            },
        },
        "Mapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {"FunctionName": "f", "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}},
        },
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": {"Ref": "Retention"}}},
    },
}


def _template(document: dict[str, Any], **parameters: str) -> TransformedTemplate:
    return transform_template(document, identity=IDENTITY, parameters=parameters, base_dir=Path())


def _changes(edit: Any = None, **parameters: str) -> ChangeSet:
    proposed = copy.deepcopy(BASE)
    if edit is not None:
        edit(proposed["Resources"])
    deployed, changed = _template(BASE), _template(proposed, **parameters)
    return create_change_set(stack_name="s", deployed=deployed, proposed=changed, region="us-east-1")


def _row(change_set: ChangeSet, logical_id: str) -> tuple[str, str | None]:
    (change,) = [c for c in change_set.changes if c.logical_id == logical_id]
    return change.action, change.replacement


def test_the_same_template_and_parameters_make_an_empty_change_set() -> None:
    change_set = _changes()
    assert change_set.empty
    assert "no changes" in change_set.describe()


def test_a_property_that_can_change_in_place_is_modified_without_replacement() -> None:
    change_set = _changes(lambda r: r["Queue"]["Properties"].update(VisibilityTimeout=60))
    assert [c.logical_id for c in change_set.changes] == ["Queue"]
    assert _row(change_set, "Queue") == (MODIFY, "False")


def test_a_create_only_property_replaces_the_resource_and_its_referrers_may_be_replaced() -> None:
    change_set = _changes(lambda r: r["Queue"]["Properties"].update(QueueName="renamed"))
    assert _row(change_set, "Queue") == (MODIFY, "True")
    # The mapping's EventSourceArn (create-only) refers to the replaced queue's new ARN.
    assert _row(change_set, "Mapping") == (MODIFY, "Conditional")
    described = change_set.describe()
    assert "Queue (AWS::SQS::Queue) is replaced: QueueName cannot change in place" in described
    assert "Mapping (AWS::Lambda::EventSourceMapping) may be replaced" in described


def test_a_conditionally_create_only_property_may_replace_the_resource() -> None:
    change_set = _changes(
        lambda r: r["Table"]["Properties"].update(
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
    )
    assert _row(change_set, "Table") == (MODIFY, "Conditional")


def test_a_changed_parameter_value_modifies_the_resources_that_use_it() -> None:
    change_set = _changes(Retention="120")
    assert [c.logical_id for c in change_set.changes] == ["Dlq"]
    assert _row(change_set, "Dlq") == (MODIFY, "False")


def test_added_and_removed_logical_ids_are_adds_and_removes() -> None:
    def edit(resources: dict[str, Any]) -> None:
        resources["Extra"] = {"Type": "AWS::SNS::Topic"}
        del resources["Dlq"]

    change_set = _changes(edit)
    assert _row(change_set, "Extra") == (ADD, None)
    assert _row(change_set, "Dlq") == (REMOVE, None)
    assert change_set.of(ADD, "AWS::SNS::Topic") == {"Extra"}


def test_a_changed_resource_type_is_refused() -> None:
    with pytest.raises(UserError, match="Update of resource type is not permitted"):
        _changes(lambda r: r["Dlq"].update(Type="AWS::SNS::Topic"))


def test_create_only_properties_come_from_the_schemas_cfn_lint_ships() -> None:
    schema = resource_schema("AWS::SQS::Queue", "us-east-1")
    assert schema is not None and "/properties/QueueName" in schema.create_only
    assert resource_schema("Custom::Thing", "us-east-1") is None


def test_a_value_the_resource_schema_refuses_is_named_with_its_resource_property_and_reason() -> None:
    document = copy.deepcopy(BASE)
    document["Resources"]["Queue"]["Properties"]["VisibilityTimeout"] = 99999
    document["Resources"]["Table"]["Properties"]["BillingMode"] = "SOMETIMES"
    problems = invalid_properties(_template(document), "us-east-1")
    assert len(problems) == 2
    assert problems[0].startswith("Queue (AWS::SQS::Queue) property VisibilityTimeout: 99999")
    assert "43200" in problems[0]
    assert problems[1].startswith("Table (AWS::DynamoDB::Table) property BillingMode: 'SOMETIMES'")


def test_values_known_only_while_deploying_and_converted_scalars_pass_validation() -> None:
    document = copy.deepcopy(BASE)
    document["Resources"]["Queue"]["Properties"]["VisibilityTimeout"] = "30"  # CloudFormation converts it
    assert invalid_properties(_template(document), "us-east-1") == []


def test_a_missing_required_property_is_refused() -> None:
    document = copy.deepcopy(BASE)
    del document["Resources"]["Table"]["Properties"]["KeySchema"]
    (problem,) = invalid_properties(_template(document), "us-east-1")
    assert problem.startswith("Table (AWS::DynamoDB::Table): 'KeySchema' is a required property")


ROLE = {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}


def test_iam_resources_need_capability_iam_and_named_ones_capability_named_iam() -> None:
    document: dict[str, Any] = {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": ROLE}}}
    template = _template(document)
    needs = required_capabilities(document, template, direct=False)
    assert needs == ["CAPABILITY_IAM: Role (AWS::IAM::Role)"]
    check_capabilities(document, template, ["CAPABILITY_IAM"], direct=False)
    named = {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {**ROLE, "RoleName": "r"}}}}
    with pytest.raises(UserError, match=r"Requires capabilities : \[CAPABILITY_NAMED_IAM\]"):
        check_capabilities(named, _template(named), ["CAPABILITY_IAM"], direct=False)
    check_capabilities(named, _template(named), ["CAPABILITY_NAMED_IAM"], direct=False)


def test_a_transform_needs_capability_auto_expand_only_without_a_change_set() -> None:
    document = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    }
    template = _template(document)
    check_capabilities(document, template, [], direct=False)
    with pytest.raises(UserError, match=r"\[CAPABILITY_AUTO_EXPAND\].*AWS::Serverless-2016-10-31"):
        check_capabilities(document, template, [], direct=True)
