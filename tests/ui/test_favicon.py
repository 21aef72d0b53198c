from django.test import Client


def test_favicon_ico_leads_to_the_svg_icon_without_signing_in():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("/favicon.svg")
