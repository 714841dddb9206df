"""Row 14: launch template versions from a source version, ClientToken, the default version,
DescribeLaunchTemplateVersions with $Latest/$Default and Filters, and the not-found codes."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import unique

REGION = "ca-central-1"  # kept apart from the other tests' Regions
MISSING_ID = "lt-0123456789abcdef0"

BASE_DATA = {
    "ImageId": "ami-11111111111111111",
    "InstanceType": "t3.micro",
    "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True, "KmsKeyId": "alias/dr"}}],
    "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "dr"}]}],
}


def new_template(e, **kwargs) -> tuple[object, dict]:
    ec2 = e.client("ec2", REGION)
    template = ec2.create_launch_template(LaunchTemplateName=unique("dr-lt"), VersionDescription="v1", LaunchTemplateData=BASE_DATA, **kwargs)
    return ec2, template["LaunchTemplate"]


def error_of(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_source_version_copies_the_source_data_and_overrides_what_is_given(emu):
    ec2, lt = new_template(emu)
    v2 = ec2.create_launch_template_version(
        LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="$Latest", VersionDescription="replica ami-2", LaunchTemplateData={"ImageId": "ami-22222222222222222"}
    )["LaunchTemplateVersion"]
    assert (v2["VersionNumber"], v2["VersionDescription"], v2["DefaultVersion"]) == (2, "replica ami-2", False)
    assert v2["LaunchTemplateData"] == {**BASE_DATA, "ImageId": "ami-22222222222222222"}
    # a given parameter replaces the source's whole value
    mappings = [{"DeviceName": "/dev/sdf", "Ebs": {"Encrypted": True, "KmsKeyId": "alias/other"}}]
    v3 = ec2.create_launch_template_version(
        LaunchTemplateName=lt["LaunchTemplateName"], SourceVersion="1", LaunchTemplateData={"BlockDeviceMappings": mappings}
    )["LaunchTemplateVersion"]
    assert v3["LaunchTemplateData"]["BlockDeviceMappings"] == mappings
    assert v3["LaunchTemplateData"]["ImageId"] == BASE_DATA["ImageId"]
    # $Default is version 1 until ModifyLaunchTemplate moves it
    v4 = ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="$Default", LaunchTemplateData={})["LaunchTemplateVersion"]
    assert v4["LaunchTemplateData"] == BASE_DATA
    # without SourceVersion: only the data given
    v5 = ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], LaunchTemplateData={"ImageId": "ami-3"})["LaunchTemplateVersion"]
    assert v5["LaunchTemplateData"] == {"ImageId": "ami-3"}


def test_plain_moto_ignores_source_version_and_client_token(plain):
    ec2, lt = new_template(plain)
    args = dict(LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="$Latest", LaunchTemplateData={"ImageId": "ami-2"}, ClientToken="t")
    first = ec2.create_launch_template_version(**args)["LaunchTemplateVersion"]
    assert first["LaunchTemplateData"] == {"ImageId": "ami-2"}
    assert ec2.create_launch_template_version(**args)["LaunchTemplateVersion"]["VersionNumber"] == 3


def test_unknown_source_version_is_rejected(emu):
    ec2, lt = new_template(emu)
    for version in ("2", "0", "-1", "$Newest"):
        code = error_of(
            lambda: ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion=version, LaunchTemplateData={})
        )
        assert code == ("InvalidLaunchTemplateId.VersionNotFound", 400)


def test_client_token_returns_the_same_version_and_creates_nothing(emu):
    ec2, lt = new_template(emu)
    args = dict(LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="$Latest", LaunchTemplateData={"ImageId": "ami-2"}, ClientToken=unique("tok"))
    first = ec2.create_launch_template_version(**args)["LaunchTemplateVersion"]
    again = ec2.create_launch_template_version(**args)["LaunchTemplateVersion"]
    assert again == first
    listed = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])["LaunchTemplateVersions"]
    assert sorted(v["VersionNumber"] for v in listed) == [1, 2]
    other = {**args, "LaunchTemplateData": {"ImageId": "ami-9"}}
    assert error_of(lambda: ec2.create_launch_template_version(**other)) == ("IdempotentParameterMismatch", 400)


def test_default_version_moves_with_modify_launch_template(emu):
    ec2, lt = new_template(emu)
    tid = lt["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=tid, SourceVersion="$Latest", LaunchTemplateData={"ImageId": "ami-2"})
    ec2.create_launch_template_version(LaunchTemplateId=tid, SourceVersion="$Latest", LaunchTemplateData={"ImageId": "ami-3"})
    described = ec2.describe_launch_templates(LaunchTemplateIds=[tid])["LaunchTemplates"][0]
    assert (described["DefaultVersionNumber"], described["LatestVersionNumber"]) == (1, 3)
    # boto3's DefaultVersion goes on the wire as SetDefaultVersion
    modified = ec2.modify_launch_template(LaunchTemplateId=tid, DefaultVersion="2")["LaunchTemplate"]
    assert (modified["DefaultVersionNumber"], modified["LatestVersionNumber"]) == (2, 3)
    both = ec2.describe_launch_template_versions(LaunchTemplateId=tid, Versions=["$Latest", "$Default"])["LaunchTemplateVersions"]
    assert [(v["VersionNumber"], v["DefaultVersion"], v["LaunchTemplateData"]["ImageId"]) for v in both] == [(3, False, "ami-3"), (2, True, "ami-2")]
    ec2.modify_launch_template(LaunchTemplateName=lt["LaunchTemplateName"], DefaultVersion="3")
    same = ec2.describe_launch_template_versions(LaunchTemplateId=tid, Versions=["$Latest", "$Default"])["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in same] == [3]  # one version, listed once
    assert error_of(lambda: ec2.modify_launch_template(LaunchTemplateId=tid, DefaultVersion="7")) == ("InvalidLaunchTemplateId.VersionNotFound", 400)


def test_describe_launch_template_versions_filters(emu):
    ec2, lt = new_template(emu)
    tid = lt["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=tid, SourceVersion="1", LaunchTemplateData={"ImageId": "ami-2"})
    ec2.create_launch_template_version(LaunchTemplateId=tid, SourceVersion="1", LaunchTemplateData={"ImageId": "ami-2", "InstanceType": "t3.small"})

    def numbers(filters):
        found = ec2.describe_launch_template_versions(LaunchTemplateId=tid, Filters=filters)["LaunchTemplateVersions"]
        return sorted(v["VersionNumber"] for v in found)

    assert numbers([{"Name": "image-id", "Values": ["ami-2"]}]) == [2, 3]
    assert numbers([{"Name": "image-id", "Values": ["ami-2"]}, {"Name": "instance-type", "Values": ["t3.micro"]}]) == [2]
    assert numbers([{"Name": "is-default-version", "Values": ["true"]}]) == [1]
    assert error_of(lambda: numbers([{"Name": "no-such-filter", "Values": ["x"]}])) == ("InvalidParameterValue", 400)


@pytest.mark.parametrize(
    "call",
    [
        "create_version",
        "modify",
        "describe_versions",
        "describe",
    ],
)
def test_missing_template_gets_the_not_found_code_of_its_name_or_id(emu, call):
    ec2 = emu.client("ec2", REGION)
    calls = {
        "create_version": lambda **ref: ec2.create_launch_template_version(LaunchTemplateData={"ImageId": "ami-1"}, **ref),
        "modify": lambda **ref: ec2.modify_launch_template(DefaultVersion="1", **ref),
        "describe_versions": lambda **ref: ec2.describe_launch_template_versions(**ref),
        "describe": lambda **ref: ec2.describe_launch_templates(
            **({"LaunchTemplateNames": [ref["LaunchTemplateName"]]} if "LaunchTemplateName" in ref else {"LaunchTemplateIds": [ref["LaunchTemplateId"]]})
        ),
    }
    assert error_of(lambda: calls[call](LaunchTemplateName="no-such-template")) == ("InvalidLaunchTemplateName.NotFoundException", 400)
    assert error_of(lambda: calls[call](LaunchTemplateId=MISSING_ID)) == ("InvalidLaunchTemplateId.NotFound", 400)


def test_template_tags_stay_on_the_template_and_data_tags_apply_at_launch(emu):
    ec2, lt = new_template(emu, TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "owner", "Value": "ferry"}]}])
    assert lt["Tags"] == [{"Key": "owner", "Value": "ferry"}]
    v1 = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])["LaunchTemplateVersions"][0]
    assert v1["LaunchTemplateData"]["TagSpecifications"] == BASE_DATA["TagSpecifications"]  # no launch-template entry
    listed = ec2.describe_launch_templates(Filters=[{"Name": "tag:owner", "Values": ["ferry"]}])["LaunchTemplates"]
    assert lt["LaunchTemplateId"] in [t["LaunchTemplateId"] for t in listed]
    # instance and volume tag specifications in the data apply at launch
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(Size=2, AvailabilityZone=f"{REGION}a")["VolumeId"])
    image_id = ec2.register_image(
        Name=unique("img"), RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}]
    )["ImageId"]
    data = {"ImageId": image_id, "TagSpecifications": [{"ResourceType": t, "Tags": [{"Key": "from", "Value": t}]} for t in ("instance", "volume")]}
    version = ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], LaunchTemplateData=data)["LaunchTemplateVersion"]
    launched = ec2.run_instances(
        MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": str(version["VersionNumber"])}
    )["Instances"][0]
    assert {"Key": "from", "Value": "instance"} in launched["Tags"]
    assert {"Key": "aws:ec2launchtemplate:version", "Value": str(version["VersionNumber"])} in launched["Tags"]
    volume = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [launched["InstanceId"]]}])["Volumes"][0]
    assert volume["Tags"] == [{"Key": "from", "Value": "volume"}]
