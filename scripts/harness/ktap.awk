# SPDX-License-Identifier: GPL-2.0
#
# Read the KUnit results (KTAP) that a kernel printed on its console and
# print one line per test case and per suite: "RESULT<TAB>NAME<TAB>DETAIL",
# RESULT being ok, fail or skip, NAME suite/case or suite.  Only lines with
# a printk timestamp count: another kernel's console, relayed behind "# ",
# is not this kernel's.
!/^\[ *[0-9]+\.[0-9]+\] / { next }
{
	sub(/\r$/, "")
	sub(/^\[ *[0-9]+\.[0-9]+\] /, "")
}
/^    # Subtest: / { suite = $3; next }
/^(    )?(not )?ok [0-9]+ / {
	nested = /^    /
	line = $0
	sub(/^ */, "", line)
	bad = line ~ /^not /
	sub(/^(not )?ok [0-9]+ /, "", line)
	detail = ""
	if (match(line, / # /)) {
		detail = substr(line, RSTART + 3)
		line = substr(line, 1, RSTART - 1)
	}
	res = bad ? "fail" : (detail ~ /^SKIP/ ? "skip" : "ok")
	if (nested && suite != "")
		print res "\t" suite "/" line "\t" detail
	else if (!nested)
		print res "\t" line "\t" detail
}
