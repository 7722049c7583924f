#!/usr/bin/perl
# A scripted scenario with a real client library (Debian
# libcache-memcached-perl) against a kumo gateway: plain and multi-key
# gets, counters, add/replace/delete, Perl references (Storable, flags),
# compression off, unicode bytes. Usage: perl perl_scenario.pl HOST:PORT
# Prints 'N passed, N failed' and exits non-zero on any failure.
use strict;
use warnings;
use Cache::Memcached;

my $addr = shift or die "usage: $0 HOST:PORT\n";
my $m = Cache::Memcached->new({ servers => [$addr], compress_threshold => 0 });
my ($passed, $failed) = (0, 0);
my $p = "pl-$$-";

sub check {
    my ($name, $got, $want) = @_;
    $got  = defined $got  ? $got  : '(undef)';
    $want = defined $want ? $want : '(undef)';
    if ($got eq $want) { $passed++ } else { $failed++; print "FAIL $name: got '$got', want '$want'\n" }
}

check("set", $m->set("${p}a", "1") ? 1 : 0, 1);
check("get", $m->get("${p}a"), "1");
check("get missing", $m->get("${p}missing"), undef);

my %want;
for my $i (0 .. 199) { $want{"${p}k$i"} = "v" x ($i % 50 + 1); $m->set("${p}k$i", $want{"${p}k$i"}) }
my $got = $m->get_multi(map { "${p}k$_" } 0 .. 199, "${p}nokey");
check("get_multi count", scalar(keys %$got), 200);
my $same = 1;
for my $k (keys %want) { $same = 0 unless defined $got->{$k} && $got->{$k} eq $want{$k} }
check("get_multi values", $same, 1);

$m->set("${p}n", 10);
check("incr", $m->incr("${p}n", 5), 15);
check("decr", $m->decr("${p}n", 20), 0);
check("incr missing", $m->incr("${p}nokey", 1), undef);
check("add existing", $m->add("${p}n", 1) ? 1 : 0, 0);
check("add new", $m->add("${p}new", "x") ? 1 : 0, 1);
check("replace", $m->replace("${p}new", "y") ? 1 : 0, 1);
check("replace missing", $m->replace("${p}nokey", "y") ? 1 : 0, 0);
check("after replace", $m->get("${p}new"), "y");
check("delete", $m->delete("${p}new") ? 1 : 0, 1);
check("delete again", $m->delete("${p}new") ? 1 : 0, 0);
check("after delete", $m->get("${p}new"), undef);

$m->set("${p}ref", { list => [1, 2, 3], name => "kumo" });
my $r = $m->get("${p}ref");
check("ref name", ref $r eq 'HASH' ? $r->{name} : undef, "kumo");
check("ref list", ref $r eq 'HASH' ? join(",", @{ $r->{list} }) : undef, "1,2,3");

my $bytes = "\x{e3}\x{81}\x{8f}\x{e3}\x{82}\x{82}\r\n\0end";
$m->set("${p}bytes", $bytes);
check("binary-safe value", $m->get("${p}bytes"), $bytes);

print "$passed passed, $failed failed\n";
exit($failed ? 1 : 0);
