#!/usr/bin/perl
# make_mmdb.pl - writes a small GeoIP2-Country-shaped MaxMind DB for the tests, with Debian's
# libmaxmind-db-writer-perl (the format's reference writer).
#   make_mmdb.pl OUT.mmdb NETWORK=CC [NETWORK=CC ...]      e.g. 81.2.69.0/24=GB 2a02:cf40::/29=NO
# IPv4 networks are also reachable as IPv4-mapped IPv6 addresses (alias_ipv6_to_ipv4).
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my ($out, @pairs) = @ARGV;
die "usage: $0 OUT.mmdb NETWORK=CC...\n" unless $out && @pairs;
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 24,
    database_type         => 'GeoIP2-Country',
    languages             => ['en'],
    description           => { en => 'cutover test countries' },
    alias_ipv6_to_ipv4    => 1,
    map_key_type_callback => sub {
        return { country => 'map', iso_code => 'utf8_string', names => 'map', en => 'utf8_string' }->{ $_[0] };
    },
);
for my $p (@pairs) {
    my ($net, $cc) = split /=/, $p, 2;
    $tree->insert_network($net, { country => { iso_code => $cc, names => { en => "country $cc" } } });
}
my $tmp = "$out.tmp$$";
open my $fh, '>:raw', $tmp or die "$tmp: $!\n";
$tree->write_tree($fh);
close $fh or die "$tmp: $!\n";
rename $tmp, $out or die "rename $tmp: $!\n";
