echo "$libout $libdev $depPath" > $out
echo docs > $doc
echo dev > $dev
echo bin > $bin
