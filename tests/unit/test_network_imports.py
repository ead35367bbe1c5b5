"""Reading contacts files: LinkedIn's export with its preamble, vCard, plain CSV."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from onward.tasks.errors import ConfigError
from onward.tasks.network.imports import normalise_url, read_contacts_file
from tests.support.paths import SAMPLES

# LinkedIn's preamble, word for word.
NOTE = (
    '"When exporting your connection data, you may notice that some of the email addresses '
    "are missing. You will only see email addresses for connections who have allowed their "
    "connections to see or download their email address using this setting "
    "https://www.linkedin.com/psettings/privacy/email. You can learn more about this here: "
    'https://www.linkedin.com/help/linkedin/answer/261"'
)
LINKEDIN = (
    "Notes:\n"
    + NOTE
    + """

First Name,Last Name,URL,Email Address,Company,Position,Connected On
Ada,Quist,https://www.linkedin.com/in/ada-quist,,Brightforge,Engineering Manager,12 Mar 2024
Ben,Oyelaran,https://www.linkedin.com/in/ben-o,ben@oyelaran.example,"Tidewater, Inc.",Analyst,\
03 Nov 2023
Broken,Row,https://www.linkedin.com/in/broken
Cleo,Marsh,https://www.linkedin.com/in/cleo-marsh,not-an-address,Lumen Labs,Recruiter,01 Jan 2024
Dev,Anand,https://www.linkedin.com/in/dev-anand,,Quillon,Engineer,someday
Eve,Nakamura,https://www.linkedin.com/in/eve-nakamura/,,"Kestrel
Health",Data Scientist,15 Feb 2024
,,https://www.linkedin.com/in/nobody,,Nowhere,,02 Feb 2024
Finn,Berg,https://www.linkedin.com/in/finn-berg,,Open Harbor,Designer,06 Jun 2019
"""
)


def _write(tmp_path: Path, name: str, text: str, newline: str = "\r\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def test_linkedin_export_with_preamble_and_bad_rows(tmp_path: Path) -> None:
    parsed = read_contacts_file(_write(tmp_path, "Connections.csv", LINKEDIN))
    assert parsed.format == "linkedin"
    assert [c.name for c in parsed.contacts] == [
        "Ada Quist",
        "Ben Oyelaran",
        "Eve Nakamura",
        "Finn Berg",
    ]
    ada, ben, eve, _finn = parsed.contacts
    assert ada.line == 5
    assert ada.profile_url == "linkedin.com/in/ada-quist"
    assert ada.email is None
    assert ada.connected_on == date(2024, 3, 12)
    assert ben.email == "ben@oyelaran.example"
    assert ben.company == "Tidewater, Inc."
    # A quoted field over two lines: the record starts on line 10, the next one on 12.
    assert (eve.line, eve.company) == (10, "Kestrel Health")
    assert [(p.line, p.reason) for p in parsed.problems] == [
        (7, "expected 7 fields, found 3"),
        (8, "e-mail 'not-an-address' is not an address"),
        (9, "'someday' is not a date like 12 Mar 2024"),
        (12, "no name and no e-mail address"),
    ]


def test_the_packaged_sample_is_a_clean_linkedin_export() -> None:
    parsed = read_contacts_file(SAMPLES / "connections.csv")
    assert parsed.format == "linkedin"
    assert parsed.problems == []
    assert len(parsed.contacts) >= 10
    assert 0 < sum(c.email is not None for c in parsed.contacts) < len(parsed.contacts) / 2


def test_plain_csv_with_aliases_in_any_case(tmp_path: Path) -> None:
    text = "Full Name;ignored\n"  # not our delimiter: one column, no name alias -> error below
    with pytest.raises(ConfigError, match="no name or e-mail column"):
        read_contacts_file(_write(tmp_path, "bad.csv", text))
    text = (
        "NAME,E-Mail,Organisation,Job Title,LinkedIn URL\n"
        "Grace Liu,Grace.Liu@Northwind.example,Northwind Analytics,Analytics Engineer,\n"
        "Hugo Brandt,,Fernhill Bank,,https://linkedin.com/in/hugo-brandt?trk=x\n"
        "Ivy,ivy@,,,\n"
    )
    parsed = read_contacts_file(_write(tmp_path, "people.csv", text, "\n"))
    assert parsed.format == "csv"
    grace, hugo = parsed.contacts
    assert (grace.email, grace.company, grace.position) == (
        "grace.liu@northwind.example",
        "Northwind Analytics",
        "Analytics Engineer",
    )
    assert hugo.profile_url == "linkedin.com/in/hugo-brandt"
    assert [(p.line, p.reason) for p in parsed.problems] == [(4, "e-mail 'ivy@' is not an address")]


def test_first_and_last_name_columns(tmp_path: Path) -> None:
    parsed = read_contacts_file(
        _write(tmp_path, "x.csv", "given name,surname,email\nJo,March,jo@march.example\n")
    )
    assert parsed.contacts[0].name == "Jo March"


VCARDS = """\
BEGIN:VCARD
VERSION:3.0
FN:Jonas Lindqvist
N:Lindqvist;Jonas;;;
EMAIL;TYPE=INTERNET:jonas@tidewater.example
ORG:Tidewater Logistics;Analytics
TITLE:Analytics Lead
URL:https://www.linkedin.com/in/jonas-lindqvist-92
END:VCARD
BEGIN:VCARD
VERSION:3.0
N:Okafor;Hannah;;;
ORG:Northwind Analytics
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Broken Card
EMAIL:broken@@example
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Never Ends
"""


def test_vcards_each_on_its_own(tmp_path: Path) -> None:
    parsed = read_contacts_file(_write(tmp_path, "contacts.vcf", VCARDS))
    assert parsed.format == "vcard"
    jonas, hannah = parsed.contacts
    assert (jonas.line, jonas.email, jonas.company, jonas.position) == (
        1,
        "jonas@tidewater.example",
        "Tidewater Logistics",
        "Analytics Lead",
    )
    assert jonas.profile_url == "linkedin.com/in/jonas-lindqvist-92"
    assert (hannah.name, hannah.company, hannah.email) == (
        "Hannah Okafor",
        "Northwind Analytics",
        None,
    )
    assert [(p.line, p.reason) for p in parsed.problems] == [
        (15, "e-mail 'broken@@example' is not an address"),
        (20, "the card has no END:VCARD"),
    ]


def test_unusable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_contacts_file(tmp_path / "absent.csv")
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(ConfigError, match="binary"):
        read_contacts_file(binary)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_contacts_file(empty)


def test_profile_urls_compare_equal_however_written() -> None:
    assert normalise_url("https://www.LinkedIn.com/in/Jane-Doe/?originalSubdomain=uk") == (
        "linkedin.com/in/jane-doe"
    )
    assert normalise_url("linkedin.com/in/jane-doe") == "linkedin.com/in/jane-doe"
    assert normalise_url("  ") is None
