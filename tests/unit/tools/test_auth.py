from worker.tools.auth import check


def test_with_a_token_every_tool_needs_it():
    for write in (False, True):
        assert check("Bearer s3cret", "s3cret", write) is None
        assert check("bearer  s3cret ", "s3cret", write) is None
        assert check(None, "s3cret", write).status == 401
        assert check("Bearer", "s3cret", write).status == 401
        assert check("Basic czNjcmV0", "s3cret", write).status == 401
        wrong = check("Bearer s3cre", "s3cret", write)
        assert wrong.status == 401 and "does not match" in wrong.message


def test_without_a_token_reads_are_open_and_writes_say_how_to_enable_them():
    assert check(None, None, write=False) is None
    assert check("Bearer anything", None, write=False) is None
    refused = check("Bearer anything", None, write=True)
    assert refused.status == 403 and "TOOLS_TOKEN" in refused.message
