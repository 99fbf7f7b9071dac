cg-limit -q run --name hog-$$ --memory 64M -- python3 -c 'b = bytearray(200 * 2**20)'; echo "exit $?"
